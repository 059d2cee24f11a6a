"""TriMul: AlphaFold3's outgoing triangle multiplicative update, as a GPU kernel problem."""
