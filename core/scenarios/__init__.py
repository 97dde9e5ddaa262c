"""MLPerf LoadGen scenarios against a loaded runtime."""
