"""trimix directory package."""
