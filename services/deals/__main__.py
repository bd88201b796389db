"""Run the deals service: python -m services.deals"""

from services.deals.app import definition
from shared.service import run

if __name__ == "__main__":
    run(definition)
