"""recsci: config-driven experiments for three problems of applied recommendation science.

``recsci.core`` holds what every problem shares (the run loop, config validation, seeding, tracking,
metrics and results); ``recsci.graph``, ``recsci.delayed`` and ``recsci.uncertainty`` each hold one
problem and import the core, never each other.
"""

__version__ = "0.1.0"
