"""Models Thresher builds itself (the offline demo model)."""
