"""Problem environments, one package per problem."""
