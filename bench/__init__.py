"""`make bench`: the engine ceiling, this service over HTTP, peer servers, explanations, preprocessing and the
hardware limit, measured in one run on one machine and written to docs/benchmarks.md."""
