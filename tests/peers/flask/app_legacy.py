"""The legacy original for flask-jwt-extended: Flask 1.1 with flask-jwt-extended 3.x, as the app the
fixtures in tests/fixtures/flask-legacy were captured from. The same routes as app.py, in the 3.x
API (`jwt_refresh_token_required`, the blacklist loader). PEER_SECRET is its JWT_SECRET_KEY."""

import os

from flask import Flask, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt_identity,
    get_raw_jwt,
    jwt_refresh_token_required,
    jwt_required,
)

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ["PEER_SECRET"]
app.config["JWT_BLACKLIST_ENABLED"] = True
app.config["JWT_BLACKLIST_TOKEN_CHECKS"] = ["access", "refresh"]
jwt = JWTManager(app)

# username -> (identity, password)
USERS = {"user0001": ("1", "pw-user0001")}
REVOKED = set()


@jwt.token_in_blacklist_loader
def is_revoked(token):
    return token["jti"] in REVOKED


@app.route("/login", methods=["POST"])
def login():
    body = request.get_json(silent=True) or {}
    username, password = body.get("username"), body.get("password")
    if not username or not password:
        return jsonify(msg="Missing username or password"), 400
    user = USERS.get(username)
    if user is None or user[1] != password:
        return jsonify(msg="Bad username or password"), 401
    return jsonify(access_token=create_access_token(identity=user[0]), refresh_token=create_refresh_token(identity=user[0]))


@app.route("/protected")
@jwt_required
def protected():
    return jsonify(logged_in_as=get_jwt_identity())


@app.route("/refresh", methods=["POST"])
@jwt_refresh_token_required
def refresh():
    return jsonify(access_token=create_access_token(identity=get_jwt_identity()))


@app.route("/logout", methods=["POST"])
@jwt_refresh_token_required
def logout():
    REVOKED.add(get_raw_jwt()["jti"])
    return jsonify(msg="Refresh token revoked")
