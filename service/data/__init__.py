"""Reading data the way callers send it: JSON rows, records and columns, and CSV, into float64 matrices
and label vectors, with errors that name the row, the column or the field. Used by the API, the
dialects and the CLI alike."""
