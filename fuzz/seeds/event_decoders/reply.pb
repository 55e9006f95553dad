
H
$0b9d7c1e-4f5a-4c1e-9a59-3a2f7c0d1e2fshop-1����"c*m-12conv-1r-1您的包裹正在派送0:order_status