"""The shared core: networks, agent IDs, GAE, value normalization, seeding, run logs."""
