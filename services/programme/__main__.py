"""Run the programme service: python -m services.programme"""

from services.programme.app import definition
from shared.service import run

if __name__ == "__main__":
    run(definition)
