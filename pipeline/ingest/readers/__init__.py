"""One reader per extract format (delimited text, XLSX, Parquet), each returning a RawTable."""
