"""Run the attribution service: python -m services.attribution"""

from services.attribution.app import definition
from shared.service import run

if __name__ == "__main__":
    run(definition)
