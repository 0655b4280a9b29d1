"""Triage rotation: who is next, who is away, everyone's open load."""

from flask import Blueprint

bp = Blueprint("rotation", __name__, url_prefix="/team/rotation")
