"""What people look at after training: run history, comparisons, plots and reports."""
