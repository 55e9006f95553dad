
H
$0b9d7c1e-4f5a-4c1e-9a59-3a2f7c0d1e2fshop-1€àÎ×"c*m-12conv-1t-1 *agent-72cust-1