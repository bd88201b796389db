"""Run the portal: python -m services.portal"""

from services.portal.app import run

if __name__ == "__main__":
    run()
