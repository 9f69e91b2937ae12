"""Reference outputs of official implementations (computed once, outside the repo's dependencies)."""
