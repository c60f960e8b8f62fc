// The esdb testing kit (find_package(esdb_sdk COMPONENTS testing), target
// esdb::testing): everything at once. Framework-neutral: plain functions and
// classes returning values, optionals and esdb::Status; use it under any
// test framework. docs/PLUGIN_GUIDE.md, "Testing a plugin", shows how.
#pragma once

#include "esdb/testing/fake_context.h"
#include "esdb/testing/host_process.h"
#include "esdb/testing/http.h"
#include "esdb/testing/plugin_library.h"
#include "esdb/testing/temp_dir.h"
