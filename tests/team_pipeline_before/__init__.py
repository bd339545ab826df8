"""A team's churn code location before it adopts magenta-release, kept to measure how much the
adoption changes (tests/test_team_adoption.py diffs it against examples/team_pipeline/).
It is never run: it pickles models into the repository, as the team's code does today."""
