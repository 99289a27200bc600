#include "tests/support/fake_coordinator.h"

#include <gtest/gtest.h>

#include <utility>

#include "tests/support/test_support.h"

namespace fanout::testing {

FakeCoordinator::FakeCoordinator(std::string endpoint) : endpoint_(std::move(endpoint)) {
  auto router = MakeRouter(context_, endpoint_);
  if (router.ok())
    socket_.emplace(std::move(router).value());
  else
    status_ = router.status();
}

std::optional<Envelope> FakeCoordinator::Next(std::chrono::milliseconds timeout, bool heartbeats) {
  return ReceiveWithin(*socket_, /*router=*/true, timeout, heartbeats);
}

bool FakeCoordinator::Send(const std::string& peer, const Message& message,
                           zmq::message_t* payload) {
  return SendTo(*socket_, peer, message, payload);
}

std::optional<Envelope> FakeCoordinator::WelcomeNext(const Welcome& welcome) {
  auto hello = Next();
  EXPECT_TRUE(hello && std::holds_alternative<Hello>(hello->message)) << "no HELLO came";
  if (!hello || !std::holds_alternative<Hello>(hello->message)) return std::nullopt;
  EXPECT_TRUE(Send(hello->peer, welcome));
  return hello;
}

std::pair<ResultMsg, std::string> FakeCoordinator::NextResult(std::chrono::milliseconds timeout) {
  auto env = Next(timeout);
  EXPECT_TRUE(env && std::holds_alternative<ResultMsg>(env->message)) << "no RESULT came";
  if (!env || !std::holds_alternative<ResultMsg>(env->message)) return {};
  return {std::get<ResultMsg>(env->message), env->payload ? env->payload->to_string() : ""};
}

}  // namespace fanout::testing
