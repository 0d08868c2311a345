"""srca: Stepwise Reasoning Checkpoint Analysis, a test-time-scaling reasoning service.

>>> from srca import Solver, SearchConfig
>>> solver = Solver(config=SearchConfig(method="srca", n=4))   # embedded transformers model
>>> solver.solve("What is 2 + 3?").answer
"""
from .config import SearchConfig
from .engines import make_engine
from .engines.base import Engine, EngineInfo, GenRequest, GenResult
from .methods import METHODS
from .scorers import SCORERS, Scorer, ScoreInput
from .solution import Candidate, Solution, TraceNode, Usage
from .solver import Solver

__version__ = "0.1.0"
__all__ = ["Solver", "SearchConfig", "Solution", "Candidate", "TraceNode", "Usage", "Engine", "EngineInfo",
           "GenRequest", "GenResult", "make_engine", "Scorer", "ScoreInput", "METHODS", "SCORERS"]
