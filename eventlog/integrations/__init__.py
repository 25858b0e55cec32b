"""Framework adapters: LangChain chat history, OpenAI Agents SDK session."""
