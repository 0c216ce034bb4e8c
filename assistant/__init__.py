"""Assistant: question parsing, LangChain retrievers over the store, and answer composition."""
