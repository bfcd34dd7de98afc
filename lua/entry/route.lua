-- The hot path: startup.init loaded the module; package.loaded costs less per request than require.
package.loaded["urlproxy.balancer"].route()
