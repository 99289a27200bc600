// The dashboard's one page (HTML, CSS and JavaScript in one document, built into the
// binary: no CDN, machines may be offline). It polls /api/job, /api/workers and
// /api/tasks every 500 ms (DASHBOARD.md) and passes on the page's ?token=.
#pragma once

#include <string_view>

namespace fanout {

std::string_view DashboardPage();

}  // namespace fanout
