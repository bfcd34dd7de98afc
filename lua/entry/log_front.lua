-- Every https request: startup.init loaded the module; package.loaded costs less than require.
package.loaded["urlproxy.metrics"].log_front()
