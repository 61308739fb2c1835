"""Invoice and credit-note PDF documents: laid out by pure rules (`layout`, `scripts`), drawn by fpdf2
(`renderer`), stored once finalized (`repository`) and served by `service`."""
