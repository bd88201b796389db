"""Run the notifications service: python -m services.notifications"""

from services.notifications.app import definition
from shared.service import run

if __name__ == "__main__":
    run(definition)
