"""Bot-Mox customer agent."""
