"""Sources: event files and TensorBoard's data provider in, samples and exact points out; no analysis."""
