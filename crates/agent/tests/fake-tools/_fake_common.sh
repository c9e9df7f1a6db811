# Shared by the fake macOS tools (deliberately simple; they print the text documented in
# docs/macos-tokens-and-admin-needs.md §1.8). State lives in $FAKE_MAC:
#   users/<name>/{uid,realname,guid,password}  users/<name>/token (present = Secure Token holder)
#   admins (one short name per line)  os_version  apfs (present = APFS)  arch (apple_silicon|intel)
#   bt_supported, bt_escrowed (YES|NO)  bt_on_server (present = the server can return the token)
#   lie (present = sysadminctl prints Done but changes nothing)
#   override_<tool> (its content is printed instead, exit 0)  hang_<tool> (present = the tool hangs)
# Every run appends its argv to $FAKE_MAC/argv.log.
set -u
: "${FAKE_MAC:?FAKE_MAC must point at a fake Mac state directory}"
TOOL=$(basename "$0")
{ printf '%s' "$TOOL"; for a in "$@"; do printf ' %s' "$a"; done; echo; } >> "$FAKE_MAC/argv.log"
[ -f "$FAKE_MAC/hang_$TOOL" ] && exec sleep 600
[ -f "$FAKE_MAC/override_$TOOL" ] && { cat "$FAKE_MAC/override_$TOOL"; exit 0; }

nslog() { echo "$(date '+%Y-%m-%d %H:%M:%S').123 $TOOL[$$:4242] $*" >&2; }
user_dir() { echo "$FAKE_MAC/users/$1"; }
user_exists() { [ -n "$1" ] && [ -d "$FAKE_MAC/users/$1" ]; }
has_token() { user_exists "$1" && [ -f "$FAKE_MAC/users/$1/token" ]; }
is_admin() { grep -qx "$1" "$FAKE_MAC/admins" 2>/dev/null; }
password_ok() { user_exists "$1" && [ "$(cat "$FAKE_MAC/users/$1/password")" = "$2" ]; }
realname() { cat "$FAKE_MAC/users/$1/realname" 2>/dev/null || echo "$1"; }
any_token_holder() { for d in "$FAKE_MAC"/users/*/; do [ -f "${d}token" ] && return 0; done; return 1; }
state() { cat "$FAKE_MAC/$1" 2>/dev/null || echo "$2"; }
