"""The original service the conformance kit is checked against for flask-jwt-extended: Flask with
flask-jwt-extended 4.x, as the app the fixtures in tests/fixtures/flask were captured from (login,
a protected route, refresh with a refresh token, logout revoking it; one user). Run by
crates/cli/tests/cli.rs with the test venv's Flask (scripts/test-venv.sh); PEER_SECRET is its
JWT_SECRET_KEY."""

import os

from flask import Flask, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
    jwt_required,
)

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ["PEER_SECRET"]
jwt = JWTManager(app)

# username -> (identity, password)
USERS = {"user0001": ("1", "pw-user0001")}
REVOKED = set()


@jwt.token_in_blocklist_loader
def is_revoked(_header, payload):
    return payload["jti"] in REVOKED


@app.post("/login")
def login():
    body = request.get_json(silent=True) or {}
    username, password = body.get("username"), body.get("password")
    if not username or not password:
        return jsonify(msg="Missing username or password"), 400
    user = USERS.get(username)
    if user is None or user[1] != password:
        return jsonify(msg="Bad username or password"), 401
    return jsonify(access_token=create_access_token(identity=user[0]), refresh_token=create_refresh_token(identity=user[0]))


@app.get("/protected")
@jwt_required()
def protected():
    return jsonify(logged_in_as=get_jwt_identity())


@app.post("/refresh")
@jwt_required(refresh=True)
def refresh():
    return jsonify(access_token=create_access_token(identity=get_jwt_identity()))


@app.post("/logout")
@jwt_required(refresh=True)
def logout():
    REVOKED.add(get_jwt()["jti"])
    return jsonify(msg="Refresh token revoked")
