"""Pure onboarding rules: qualification scoring, the status machine, tiers, requalification."""
