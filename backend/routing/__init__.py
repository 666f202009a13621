"""Day routes of field workers, team dispatch and re-planning (calls ``geo``)."""
