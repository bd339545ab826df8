"""What several use cases share: the candidate's rows, the lifecycle, notifications."""
