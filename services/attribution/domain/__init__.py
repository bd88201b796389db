"""Attribution's pure rules: configuration, attribution models, corrections, which deals hold
credits, registration statuses, touchpoints, revenue queries, health score."""
