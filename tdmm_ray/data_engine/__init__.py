"""The data engine: prompts -> synthesize -> landmarks -> fit -> corpus on Ray Data."""
