# One image for every service; the command picks the service (python -m services.<name>).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY services ./services
# The broker's principals and ACLs are provisioned from the same image (compose: kafka-access).
COPY deploy/__init__.py deploy/kafka_access.py ./deploy/
RUN uv sync --frozen --no-dev
RUN useradd --system --uid 10001 pollinate
USER pollinate
ENV HTTP_HOST=0.0.0.0 HTTP_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready').status == 200 else 1)"
