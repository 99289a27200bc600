// CurveZMQ security for workers on other machines: key pairs in ZeroMQ's certificate file
// format, and the socket options that turn CURVE on for each side. The coordinator is the
// CURVE server; which client keys it admits is decided by ZapAuthenticator (zap.h).
// Plain functions and values; no shared state.
#pragma once

#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/status.h"

namespace fanout {

// A CURVE key pair, both halves as 40-character Z85 text. `secret_key` is empty for a
// public certificate.
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

// What a worker needs to reach a CURVE coordinator: the server's public key and its own pair.
struct CurveClientKeys {
  std::string server_key;
  CurveKeyPair own;
};

// A fresh key pair from zmq_curve_keypair. Fails only if libzmq was built without CURVE.
Result<CurveKeyPair> GenerateCurveKeyPair();

// Writes PATH (public certificate, mode 0644) and PATH_secret (both keys, mode 0600) in the
// ZPL format of czmq's zcert_save, which other ZeroMQ tools read. Refuses to overwrite.
// Without a secret key only PATH is written.
Status WriteCurveCertificates(const std::string& path, const CurveKeyPair& keys);

// Reads a certificate written by WriteCurveCertificates (or czmq). With `need_secret`, the
// file must hold a secret key too (a PATH_secret file). Errors name the file and the problem.
Result<CurveKeyPair> ReadCurveCertificate(const std::string& path, bool need_secret);

// The public keys of every certificate in `dir` (files ending in _secret are skipped, so a
// directory of keygen output works as is). An empty or unreadable directory is an error.
Result<std::vector<std::string>> ReadAuthorizedKeys(const std::string& dir);

// The ZAP domain of every coordinator ROUTER (MakeRouter sets it with or without CURVE;
// ZapAuthenticator answers the CURVE requests in it).
inline constexpr const char* kZapDomain = "fanout";

// Socket options; set them before bind/connect.
void MakeCurveServer(zmq::socket_t& socket, const CurveKeyPair& server);
void MakeCurveClient(zmq::socket_t& socket, const CurveClientKeys& keys);

// Z85 text of a 32-byte binary key (as ZAP delivers it); "" if the size is wrong.
std::string Z85Key(const std::string& binary);

}  // namespace fanout
