"""Lightning modules and the code that builds their Trainer."""
