"""Language-model pre-training of the classifier's encoder."""
