"""Reading input files and writing results."""
