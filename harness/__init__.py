"""harness: TTT-Discover, a language model that learns while it searches."""
