"""Run the onboarding service: python -m services.onboarding"""

from services.onboarding.app import definition
from shared.service import run

if __name__ == "__main__":
    run(definition)
