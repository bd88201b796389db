"""Attribution's pure rules: configuration, attribution models, corrections, health score."""
