"""One module per tab of the admin website: each view gathers and renders, deciding nothing."""
