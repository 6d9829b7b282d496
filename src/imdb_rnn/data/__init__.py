"""Data: sources (IMDB archive, TFDS, your own files) -> splits -> `tf.data` pipelines."""
