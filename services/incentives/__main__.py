"""Run the incentives service: python -m services.incentives"""

from services.incentives.app import definition
from shared.service import run

if __name__ == "__main__":
    run(definition)
