"""A capability's tab as a stranger would write one: what the website's seam promises."""
