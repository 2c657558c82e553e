"""info endpoints: protocol (pydantic), serving (logic), router (thin FastAPI layer)."""
