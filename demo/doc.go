// Package demo runs `lifeline demo`: simulated regions, the real gateway in front of them on real sockets, steady
// mixed traffic from the official openai-go client, and a scripted outage, with a live terminal view and a summary
// whose every figure comes from the run itself.
package demo
