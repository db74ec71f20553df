"""Challenges and badges (issue 19): definitions, progress folded by a worker from the public
purchase and refund events, awards granted once and clawed back through points debt."""
