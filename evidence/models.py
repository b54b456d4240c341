# Evidence models arrive with evidence intake (#3).
