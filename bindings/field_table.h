// The typed boundary between Python and an op's params struct: one table per struct names every
// field, its kind and which direction of the op reads it. A call passes a dict that must hold
// exactly the fields its direction reads - an unknown or missing name, or a value of the wrong
// kind, raises a Python error naming the op and the fields - so that a misspelt key can no longer
// turn silently into a null pointer (which a backward reads as "gradient not needed").
//
// Pointer fields take a tensor (any object with data_ptr() and numel(), so this module needs no
// libtorch) or None for an absent pointer; an empty tensor is passed as no pointer, since the
// core never reads an empty buffer and a null one is what it expects for "absent".
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace innout {
namespace bindings {

namespace py = pybind11;

// Which directions of an op read a field (a bit set).
enum Direction : unsigned {
  kForward = 1u,
  kBackward = 2u,
  kBothDirections = kForward | kBackward,
};

template <typename Params>
class FieldTable {
 public:
  // A size or count: a Python int (not a bool).
  FieldTable& size(const char* name, int64_t Params::*member, unsigned directions) {
    fields_.push_back({name, "an int", directions, [member](Params& p, py::handle value) {
                         if (!is_int(value)) return false;
                         p.*member = value.cast<int64_t>();
                         return true;
                       }});
    return *this;
  }

  // A real scalar: a Python float or int (not a bool).
  template <typename Real>
  FieldTable& real(const char* name, Real Params::*member, unsigned directions) {
    fields_.push_back({name, "a float", directions, [member](Params& p, py::handle value) {
                         if (!is_int(value) && !py::isinstance<py::float_>(value)) return false;
                         p.*member = static_cast<Real>(value.cast<double>());
                         return true;
                       }});
    return *this;
  }

  // A buffer: a tensor, or None for an absent pointer. Element is the (const) float type.
  template <typename Element>
  FieldTable& buffer(const char* name, Element* Params::*member, unsigned directions) {
    fields_.push_back({name, "a tensor or None", directions, [member](Params& p, py::handle value) {
                         if (value.is_none()) {
                           p.*member = nullptr;
                           return true;
                         }
                         if (!py::hasattr(value, "data_ptr") || !py::hasattr(value, "numel"))
                           return false;
                         const bool empty = value.attr("numel")().cast<int64_t>() == 0;
                         const auto address = value.attr("data_ptr")().cast<std::uintptr_t>();
                         p.*member = empty ? nullptr : reinterpret_cast<Element*>(address);
                         return true;
                       }});
    return *this;
  }

  // The params of `function` (the op direction `direction`) from `values`; raises ValueError for
  // unknown or missing fields and TypeError for values of the wrong kind.
  Params read(const std::string& function, Direction direction, const py::dict& values) const {
    std::vector<std::string> unknown, missing, wrong;
    for (const auto& item : values) {
      const std::string key = py::str(item.first);
      const Field* field = find(key);
      if (field == nullptr || (field->directions & direction) == 0) unknown.push_back(quoted(key));
    }
    if (!unknown.empty()) {
      throw py::value_error(function + ": unknown field" + plural(unknown) + " " + join(unknown) +
                            "; expected fields: " + expected(direction));
    }
    for (const Field& field : fields_) {
      if ((field.directions & direction) != 0 && !values.contains(field.name)) {
        missing.push_back(quoted(field.name));
      }
    }
    if (!missing.empty()) {
      throw py::value_error(function + ": missing field" + plural(missing) + " " + join(missing) +
                            " (pass None for an absent buffer)");
    }
    Params params;
    for (const Field& field : fields_) {
      if ((field.directions & direction) == 0) continue;
      const py::object value = values[py::str(field.name)];
      bool ok = false;
      try {
        ok = field.assign(params, value);
      } catch (const py::cast_error&) {
        ok = false;  // e.g. an int out of int64 range, or a negative address
      }
      if (!ok) {
        wrong.push_back("field " + quoted(field.name) + " must be " + field.expected_kind +
                        ", got " + type_name(value));
      }
    }
    if (!wrong.empty()) throw py::type_error(function + ": " + join(wrong, "; "));
    return params;
  }

 private:
  struct Field {
    std::string name;
    const char* expected_kind;
    unsigned directions;
    // Stores `value` into its member of `params`; false when `value` is of the wrong kind.
    std::function<bool(Params& params, py::handle value)> assign;
  };

  static bool is_int(py::handle value) {
    return py::isinstance<py::int_>(value) && !py::isinstance<py::bool_>(value);
  }
  static std::string quoted(const std::string& name) { return "'" + name + "'"; }
  static std::string plural(const std::vector<std::string>& names) {
    return names.size() > 1 ? "s" : "";
  }
  static std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
    std::string text;
    for (const std::string& item : items) text += (text.empty() ? "" : separator) + item;
    return text;
  }
  static std::string type_name(py::handle value) {
    return py::str(py::type::handle_of(value).attr("__name__"));
  }

  const Field* find(const std::string& name) const {
    for (const Field& field : fields_) {
      if (field.name == name) return &field;
    }
    return nullptr;
  }
  std::string expected(Direction direction) const {
    std::vector<std::string> names;
    for (const Field& field : fields_) {
      if ((field.directions & direction) != 0) names.push_back(field.name);
    }
    return join(names);
  }

  std::vector<Field> fields_;
};

}  // namespace bindings
}  // namespace innout
