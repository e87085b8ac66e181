"""Soulseek matching engine: query building, path parsing, hard rejects, scoring, ranking."""

from .models import Candidate, MatchDecision, MatchPreferences, ScoredCandidate, WantedTrack
from .paths import candidates_from_responses, parse_candidate
from .queries import build_album_query, build_queries
from .scoring import rank

__all__ = [
    "Candidate",
    "MatchDecision",
    "MatchPreferences",
    "ScoredCandidate",
    "WantedTrack",
    "build_album_query",
    "build_queries",
    "candidates_from_responses",
    "parse_candidate",
    "rank",
]
